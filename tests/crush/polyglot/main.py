print(banner("polyglot", 20))
pairs = [(12, 18), (17, 5), (100, 75)]
for a, b in pairs:
    print(a, b, gcd(a, b))
print("mean", mean([gcd(a, b) for a, b in pairs]))
print(checked_square(46340))
print(checked_square(46341))
