# Dates without a library: leap years, day of the week (Zeller), day of year, a month calendar.

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def is_leap(y):
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def days_in_month(y, m):
    return [31, 29 if is_leap(y) else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]


def weekday(y, m, d):
    if m < 3:
        m += 12
        y -= 1
    k, j = y % 100, y // 100
    h = (d + 13 * (m + 1) // 5 + k + k // 4 + j // 4 + 5 * j) % 7
    return (h + 5) % 7


def day_of_year(y, m, d):
    return sum([days_in_month(y, i) for i in range(1, m)]) + d


for y, m, d in [(2000, 1, 1), (1969, 7, 20), (2024, 2, 29), (1900, 3, 1), (2038, 1, 19)]:
    print(f"{y:04}-{m:02}-{d:02} {DAYS[weekday(y, m, d)]:<9} day {day_of_year(y, m, d):3} leap={is_leap(y)}")
print([y for y in range(1896, 1921) if is_leap(y)])
y, m = 2024, 2
print(f"{MONTHS[m - 1]} {y}".center(20))
print("Mo Tu We Th Fr Sa Su")
line = "   " * weekday(y, m, 1)
for d in range(1, days_in_month(y, m) + 1):
    line += f"{d:2} "
    if weekday(y, m, d) == 6:
        print(line.rstrip())
        line = ""
if line:
    print(line.rstrip())
