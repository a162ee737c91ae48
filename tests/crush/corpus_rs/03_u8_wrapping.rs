fn seven() -> u32 {
    7
}

fn main() {
    let a: u8 = 250;
    let b: u8 = a.wrapping_add(10);
    println!("{} {}", a, b);
    let c: i8 = -128;
    println!("{} {}", c.wrapping_sub(1), c.wrapping_mul(3));
    let d = 1000i32 as u8;
    let e = -1i64 as u32;
    let f = 3.99f64 as i32;
    let g = -3.99 as i32;
    let h = 1e20 as i32;
    println!("{} {} {} {} {}", d, e, f, g, h);
    println!("{} {}", u64::MAX, i64::MIN);
    let s: u32 = 5;
    let t: u32 = seven();
    println!("{}", s - t);
}
