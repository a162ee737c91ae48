// powers of 0, 1 and -1 (any exponent), and the remainder of MIN by -1 (its own panic message)
fn power(base: i64, exp: u32) -> i64 {
    base.pow(exp)
}

fn remainder(a: i32, b: i32) -> i32 {
    a % b
}

fn main() {
    let mut exp: u32 = 0;
    while exp < 6 {
        println!("{} {} {} {}", power(-1, exp), power(0, exp), power(1, exp), power(-2, exp));
        exp += 1;
    }
    println!("{} {}", power(-1, 4000000001), power(-1, 4000000000));
    println!("{} {} {}", remainder(-7, 2), remainder(7, -2), remainder(i32::MIN, 2));
    let divisor = -1;
    println!("{}", remainder(i32::MIN, divisor));
}
