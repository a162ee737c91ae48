fn two_hundred() -> i16 {
    200
}

fn main() {
    let x = 5;
    let x = x * 2;
    {
        let x = "inner";
        println!("{}", x);
    }
    println!("{}", x);
    let mut n: u32 = 1;
    let mut k: u32 = 0;
    while n < 1000000 {
        n *= 3;
        k += 1;
    }
    println!("{} {}", n, k);
    let y: i16 = 300;
    let z = y * 100;
    println!("{}", z);
    let w = y * two_hundred();
    println!("{}", w);
}
