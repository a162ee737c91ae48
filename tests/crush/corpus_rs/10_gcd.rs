fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b) * b
}

fn main() {
    println!("{} {} {}", gcd(48, 18), gcd(17, 5), lcm(4, 6));
    let mut x: u64 = 1;
    for i in 1..=40 {
        x = lcm(x, i);
        if i % 10 == 0 {
            println!("lcm(1..={}) = {}", i, x);
        }
    }
}
