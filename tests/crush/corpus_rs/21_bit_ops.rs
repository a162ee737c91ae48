fn popcount(v: u64) -> u32 {
    let mut x = v;
    let mut c: u32 = 0;
    while x != 0 {
        x &= x - 1;
        c += 1;
    }
    c
}

fn main() {
    let a: u32 = 0b1011_0110;
    println!("{} {} {} {}", a & 0xF, a | 1, a ^ 0xFF, !a);
    println!("{} {}", a << 4, a >> 3);
    let n: i32 = -16;
    println!("{} {} {}", n >> 2, n << 1, !n);
    for x in vec![0u64, 1, 255, 1 << 40, u64::MAX] {
        println!("{} has {} ones", x, popcount(x));
    }
    let s: u32 = 1;
    let by: u32 = 31;
    println!("{}", s << by);
}
