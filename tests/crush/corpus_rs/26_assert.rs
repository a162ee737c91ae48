fn checked_div(a: i32, b: i32) -> i32 {
    assert!(b != 0, "division by zero: {} / {}", a, b);
    a / b
}

fn main() {
    println!("{}", checked_div(10, 3));
    assert_eq!(checked_div(9, 3), 3);
    println!("asserts passed");
    println!("{}", checked_div(1, 0));
}
