fn main() {
    let pairs: Vec<i64> = vec![7, 3, -7, 3, 7, -3, -7, -3];
    let mut i: usize = 0;
    while i < pairs.len() {
        let a = pairs[i];
        let b = pairs[i + 1];
        println!("{} / {} = {}, {} % {} = {}", a, b, a / b, a, b, a % b);
        i += 2;
    }
    let x: f64 = 7.5;
    println!("{} {} {} {}", x / 2.0, x % 2.0, -x % 2.0, 1.0 / 3.0);
    let zero: i64 = pairs.len() as i64 - 8;
    println!("about to divide by {}", zero);
    println!("{}", 10 / zero);
}
