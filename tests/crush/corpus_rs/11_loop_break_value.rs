fn collatz(start: u64) -> u32 {
    let mut n = start;
    let mut steps: u32 = 0;
    loop {
        if n == 1 {
            break steps;
        }
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        steps += 1;
    }
}

fn main() {
    let mut best: u64 = 0;
    let mut best_steps: u32 = 0;
    for n in 1..1000 {
        let s = collatz(n);
        if s > best_steps {
            best = n;
            best_steps = s;
        }
    }
    println!("{} takes {} steps", best, best_steps);
    let mut count = 0;
    let found = loop {
        count += 1;
        if count * count > 500 {
            break count;
        }
    };
    println!("{}", found);
}
