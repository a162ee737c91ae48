# Palindromes: normalised checks, the longest palindromic substring, palindromic numbers.


def normalise(text):
    return "".join([c.lower() for c in text if c.isalnum()])


def is_palindrome(text):
    s = normalise(text)
    return s == s[::-1]


def longest_palindrome(s):
    best = ""
    for centre in range(len(s)):
        for lo, hi in [(centre, centre), (centre, centre + 1)]:
            while lo >= 0 and hi < len(s) and s[lo] == s[hi]:
                lo -= 1
                hi += 1
            if hi - lo - 1 > len(best):
                best = s[lo + 1:hi]
    return best


for phrase in ["A man, a plan, a canal: Panama", "racecar", "hello", "", "No 'x' in Nixon", "Was it a rat I saw?"]:
    print(repr(phrase), is_palindrome(phrase))
for s in ["babad", "cbbd", "forgeeksskeegfor", "abacdfgdcaba", "a"]:
    print(s, "->", longest_palindrome(s))
print([n for n in range(100, 1000) if str(n) == str(n)[::-1]][:12])
