fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn checked_square(x: i32) -> i32 {
    x * x
}
