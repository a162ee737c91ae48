#[derive(Debug, Clone, Copy, PartialEq)]
enum Op { Add, Sub, Mul, Div }

fn apply(op: Op, a: i64, b: i64) -> i64 {
    match op {
        Op::Add => a + b,
        Op::Sub => a - b,
        Op::Mul => a * b,
        Op::Div => a / b,
    }
}

fn main() {
    let ops = vec![Op::Add, Op::Sub, Op::Mul, Op::Div];
    for op in ops.iter() {
        println!("{:?} {}", op, apply(*op, 84, 2));
    }
    let o = Op::Mul;
    if o == Op::Mul {
        println!("mul!");
    }
    println!("{}", o != Op::Add);
}
