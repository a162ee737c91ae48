# A tiny stack-machine interpreter: a program as a list of tuples, with labels and jumps.

program = [
    ("push", 0), ("store", "i"),
    ("push", 1), ("store", "acc"),
    ("label", "loop"),
    ("load", "i"), ("push", 10), ("lt",), ("jz", "end"),
    ("load", "acc"), ("push", 3), ("mul",), ("push", 1000003), ("mod",), ("store", "acc"),
    ("load", "i"), ("push", 1), ("add",), ("store", "i"),
    ("jmp", "loop"),
    ("label", "end"),
    ("load", "acc"), ("print",),
    ("halt",),
]


def run(program, gas=10000):
    labels = {ins[1]: pc for pc, ins in enumerate(program) if ins[0] == "label"}
    stack, memory, pc, steps = [], {}, 0, 0
    output = []
    while True:
        steps += 1
        if steps > gas:
            raise RuntimeError(f"out of gas at pc {pc}")
        op = program[pc]
        pc += 1
        name = op[0]
        if name == "push":
            stack.append(op[1])
        elif name == "store":
            memory[op[1]] = stack.pop()
        elif name == "load":
            stack.append(memory[op[1]])
        elif name in ("add", "mul", "mod", "lt"):
            b, a = stack.pop(), stack.pop()
            stack.append(a + b if name == "add" else a * b if name == "mul" else a % b if name == "mod"
                         else int(a < b))
        elif name == "jz":
            if stack.pop() == 0:
                pc = labels[op[1]]
        elif name == "jmp":
            pc = labels[op[1]]
        elif name == "print":
            output.append(stack.pop())
        elif name == "halt":
            return output, steps, memory
        elif name != "label":
            raise ValueError(f"unknown op {name}")


print(run(program))
try:
    run(program, gas=50)
except RuntimeError as e:
    print(e)
