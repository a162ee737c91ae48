# Caesar and Vigenere ciphers, and breaking a Caesar cipher by letter frequency.


def shift_char(c, k):
    if "a" <= c <= "z":
        return chr((ord(c) - ord("a") + k) % 26 + ord("a"))
    if "A" <= c <= "Z":
        return chr((ord(c) - ord("A") + k) % 26 + ord("A"))
    return c


def caesar(text, k):
    return "".join([shift_char(c, k) for c in text])


def vigenere(text, key, sign=1):
    out = []
    i = 0
    for c in text:
        if c.isalpha():
            out.append(shift_char(c, sign * (ord(key[i % len(key)].lower()) - ord("a"))))
            i += 1
        else:
            out.append(c)
    return "".join(out)


def crack(cipher):
    counts = [0] * 26
    for c in cipher.lower():
        if "a" <= c <= "z":
            counts[ord(c) - ord("a")] += 1
    most = counts.index(max(counts))
    return (most - (ord("e") - ord("a"))) % 26


message = "The quick brown fox jumps over the lazy dog. Meet me near the old tree at seven!"
for k in [1, 3, 13, 25, -1]:
    print(k, caesar(message, k)[:30])
secret = caesar(message, 11)
k = crack(secret)
print("guessed key:", k, "->", caesar(secret, -k))
v = vigenere(message, "LEMON")
print(v)
print(vigenere(v, "LEMON", -1) == message)
