# Character statistics: vowels, consonants, a histogram, and the most common letters.

text = "Pack my box with five dozen liquor jugs. Sphinx of black quartz, judge my vow!"
vowels = consonants = digits = other = 0
freq = {}
for ch in text.lower():
    if ch in "aeiou":
        vowels += 1
    elif ch.isalpha():
        consonants += 1
    elif ch.isdigit():
        digits += 1
    else:
        other += 1
    if ch.isalpha():
        freq[ch] = freq.get(ch, 0) + 1
print(f"vowels={vowels} consonants={consonants} digits={digits} other={other}")
print("pangram:", len(freq) == 26)
top = sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:6]
for ch, n in top:
    print(ch, "#" * n, n)
print("".join(sorted(freq)), min(freq.values()), max(freq, key=lambda c: freq[c]))
