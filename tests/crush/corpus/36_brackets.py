# Bracket matching with a stack, reporting the first error's position.

PAIRS = {")": "(", "]": "[", "}": "{"}


def check(text):
    stack = []
    for i, c in enumerate(text):
        if c in "([{":
            stack.append((c, i))
        elif c in PAIRS:
            if not stack:
                return f"unexpected {c!r} at {i}"
            opener, where = stack.pop()
            if opener != PAIRS[c]:
                return f"{c!r} at {i} does not close {opener!r} from {where}"
    if stack:
        opener, where = stack[-1]
        return f"{opener!r} opened at {where} is never closed"
    return "balanced"


for text in ["([]{})", "([)]", "((", "())", "", "{[()()]}", "print(a[0], {'k': (1, 2)})", "]"]:
    print(f"{text!r:32} {check(text)}")
