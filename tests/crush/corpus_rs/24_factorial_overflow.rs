fn fact(n: u64) -> u64 {
    let mut r: u64 = 1;
    for i in 1..=n {
        r *= i;
    }
    r
}

fn main() {
    for n in 15..25 {
        println!("{}! = {}", n, fact(n));
    }
}
