fn main() {
    let mut x: i32 = 2147483000;
    let step: i32 = 100;
    for i in 0..10 {
        println!("{} {}", i, x);
        x += step;
    }
}
