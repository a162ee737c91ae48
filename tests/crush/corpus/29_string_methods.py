# A tour of string methods.

s = "  Hello, World! Hello, Python.  "
print(repr(s.strip()), repr(s.lstrip()), repr(s.rstrip()))
t = s.strip()
print(t.lower(), t.upper(), t.title(), t.swapcase())
print(t.count("Hello"), t.find("World"), t.find("nope"), t.index("Python"), t.rfind("Hello"))
print(t.replace("Hello", "Bye"), t.replace("l", "L", 2))
print(t.split(), t.split(", "), t.split(",", 1), "a,b,,c".split(","))
print("-".join(["x", "y", "z"]), "".join(reversed("stressed")))
print(t.startswith("Hello"), t.endswith("."), t.startswith("World", 7))
print("42".isdigit(), "4a".isdigit(), "abc".isalpha(), "ab1".isalnum(), "   ".isspace(), "Ab".islower())
print("7".zfill(3), "-7".zfill(4), "ab".ljust(5, "."), "ab".rjust(5), "ab".center(6, "*"))
print("line1\nline2\r\nline3".splitlines(), "a b  c".split(" "))
print("%s is %d years and %.1f%%" % ("Tom", 30, 99.5))
print("{} + {} = {}".format(1, 2, 3), "{name}!".format(name="hi"), "{0}{1}{0}".format("ab", "-"))
print(ord("A"), chr(97), chr(0x263A), "é".upper(), len("naïve"), "straße".upper())
print("abc" * 3, "abc" < "abd", "Z" < "a", "apple" in "pineapple", "x" not in "abc")
print(str(12), str(-1.5), str(None), str(True), repr("it's"), repr('say "hi"'))
