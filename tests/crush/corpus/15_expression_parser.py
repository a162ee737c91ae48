# A tokenizer and recursive-descent parser/evaluator for integer arithmetic with precedence.


def tokenize(src):
    tokens = []
    i = 0
    while i < len(src):
        c = src[i]
        if c.isspace():
            i += 1
        elif c.isdigit():
            j = i
            while j < len(src) and src[j].isdigit():
                j += 1
            tokens.append(("num", int(src[i:j])))
            i = j
        elif c in "+-*/%()^":
            tokens.append(("op", c))
            i += 1
        else:
            raise ValueError(f"unexpected character {c!r} at {i}")
    tokens.append(("end", None))
    return tokens


def evaluate(src):
    tokens = tokenize(src)
    pos = 0

    def peek():
        return tokens[pos]

    def take():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        return tok

    def atom():
        kind, value = take()
        if kind == "num":
            return value
        if value == "(":
            v = expr()
            if take() != ("op", ")"):
                raise ValueError("expected )")
            return v
        if value == "-":
            return -atom()
        raise ValueError(f"unexpected {value!r}")

    def power():
        base = atom()
        if peek() == ("op", "^"):
            take()
            return base ** power()
        return base

    def term():
        v = power()
        while peek()[1] in ("*", "/", "%"):
            op = take()[1]
            rhs = power()
            if op == "*":
                v *= rhs
            elif op == "/":
                v //= rhs
            else:
                v %= rhs
        return v

    def expr():
        v = term()
        while peek()[1] in ("+", "-"):
            op = take()[1]
            v = v + term() if op == "+" else v - term()
        return v

    result = expr()
    if peek()[0] != "end":
        raise ValueError("trailing input")
    return result


for source in ["1 + 2 * 3", "(1 + 2) * 3", "2 ^ 3 ^ 2", "-7 / 2", "100 % 7 - -3", "2 ^ 100", "((42))",
               "1 +", "3 $ 4", "8 / 0"]:
    try:
        print(f"{source:>12} = {evaluate(source)}")
    except ValueError as e:
        print(f"{source:>12} : error: {e}")
    except ZeroDivisionError as e:
        print(f"{source:>12} : division by zero ({e})")
