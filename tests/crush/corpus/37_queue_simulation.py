# A bank-queue simulation with a list as a FIFO and a deterministic random generator.

seed = 2024


def rand(n):
    global seed
    seed = (seed * 6364136223846793005 + 1442695040888963407) % 2 ** 64
    return (seed >> 33) % n


queue = []
served = []
waits = []
clock = 0
next_id = 1
while clock < 60:
    if rand(10) < 4:
        queue.append((next_id, clock))
        next_id += 1
    if clock % 3 == 0 and queue:
        cid, arrived = queue.pop(0)
        served.append(cid)
        waits.append(clock - arrived)
    clock += 1
print("arrived:", next_id - 1, "served:", len(served), "still waiting:", len(queue))
print("served order:", served[:15])
print(f"average wait {sum(waits) / len(waits):.2f}, longest {max(waits)}")
