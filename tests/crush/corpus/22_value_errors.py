# ValueError raised by builtins and by our own validation, with custom messages.


def parse_age(text):
    try:
        age = int(text)
    except ValueError:
        raise ValueError(f"not a number: {text!r}")
    if age < 0 or age > 150:
        raise ValueError(f"age out of range: {age}")
    return age


for text in ["42", "-1", "abc", "200", " 7 ", "3.5"]:
    try:
        print(text.strip(), "->", parse_age(text))
    except ValueError as e:
        print("invalid:", e)

for s in ["10", "0x1f", "z", "-12"]:
    try:
        print(s, int(s, 16))
    except ValueError as e:
        print("bad hex:", e)
try:
    [1, 2, 3].index(4)
except ValueError as e:
    print("index:", e)
try:
    a, b = [1, 2, 3]
except ValueError as e:
    print("unpack:", e)
try:
    float("1.2.3")
except ValueError as e:
    print("float:", e)
