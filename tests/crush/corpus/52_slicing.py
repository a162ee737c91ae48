# Slicing strings and lists with negative indices, None bounds and steps.

s = "abcdefghij"
print(s[2:5], s[:3], s[7:], s[-3:], s[:-3], s[::2], s[1::3], s[::-1], s[-1:-4:-1], s[8:2:-2])
print(s[100:], s[-100:2], s[5:5], s[5:2], repr(s[::-3]), s[None:None:None])
nums = list(range(10))
print(nums[::3], nums[-2:], nums[1:-1], nums[::-2], nums[:0], nums[3:1:-1])
for step in [1, 2, 3, -1, -2]:
    print(step, nums[::step], s[1:8:step])
t = tuple(nums)
print(t[2:4], t[::-4], (1, 2, 3)[-1], "xyz"[-1], [1, [2, 3]][1][0])
copy = nums[:]
copy.append(99)
print(len(nums), len(copy), copy[-1], nums[-1])
word = "encyclopedia"
print(word[len(word) // 2:], word[:len(word) // 2][::-1], [word[i:i + 3] for i in range(0, len(word), 3)])
