# Run-length encoding and decoding, with a round-trip check.


def encode(s):
    if not s:
        return ""
    out = []
    run_char, run_len = s[0], 1
    for c in s[1:]:
        if c == run_char:
            run_len += 1
        else:
            out.append(f"{run_len}{run_char}")
            run_char, run_len = c, 1
    out.append(f"{run_len}{run_char}")
    return "".join(out)


def decode(s):
    out = []
    digits = ""
    for c in s:
        if c.isdigit():
            digits += c
        else:
            out.append(c * int(digits))
            digits = ""
    return "".join(out)


for s in ["WWWWWWWWWWWWBWWWWWWWWWWWWBBBWWWWWWWWWWWWWWWWWWWWWWWWBWWWWWWWWWWWWWW", "abc", "", "aaaaaaaaaaaab", "zz"]:
    e = encode(s)
    print(repr(e), decode(e) == s, f"{len(e)}/{len(s)}")
