# Full justification of a paragraph to a given width.


def justify(words, width):
    lines = []
    line = []
    length = 0
    for w in words:
        if line and length + len(line) + len(w) > width:
            lines.append(line)
            line, length = [], 0
        line.append(w)
        length += len(w)
    out = []
    for ln in lines:
        gaps = len(ln) - 1
        spaces = width - sum([len(w) for w in ln])
        if gaps == 0:
            out.append(ln[0].ljust(width))
            continue
        text = ""
        for i, w in enumerate(ln[:-1]):
            text += w + " " * (spaces // gaps + (1 if i < spaces % gaps else 0))
        out.append(text + ln[-1])
    out.append(" ".join(line).ljust(width))
    return out


paragraph = ("This is an example of text justification. Every line but the last is padded with spaces "
             "so that both margins line up, and the extra spaces go to the leftmost gaps first.")
for width in [16, 30]:
    for row in justify(paragraph.split(), width):
        print("|" + row + "|")
    print()
