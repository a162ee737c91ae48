# map, filter, sorted with key functions, any/all, min/max with key.

nums = [5, -3, 12, 0, 7, -8, 21, 4]
print(list(map(lambda x: x * x, nums)))
print(list(filter(lambda x: x > 0, nums)), list(filter(None, [0, 1, "", "a", None, [], [0]])))
print(sorted(nums, key=abs), sorted(nums, key=lambda x: (x % 3, x)), sorted(nums, reverse=True))
print(min(nums), max(nums), min(nums, key=abs), max(nums, key=lambda x: -x))
print(any([x > 20 for x in nums]), all([x > -10 for x in nums]), any([]), all([]))
words = ["kiwi", "fig", "banana", "apple", "cherry", "date"]
print(sorted(words, key=len), max(words, key=len), min(words))
print([w.upper() for w in words])
print(list(map(lambda a, b: a + b, [1, 2, 3], [10, 20, 30])))
print(sum(map(int, "12345")), list(map(len, words)))
compose = lambda f, g: lambda x: f(g(x))
inc_then_double = compose(lambda x: x * 2, lambda x: x + 1)
print([inc_then_double(i) for i in range(5)])
