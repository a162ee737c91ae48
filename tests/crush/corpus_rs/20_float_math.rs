fn newton_sqrt(x: f64) -> f64 {
    let mut g = x / 2.0;
    for _ in 0..20 {
        g = (g + x / g) / 2.0;
    }
    g
}

fn main() {
    for x in vec![2.0, 9.0, 10.0, 1e10] {
        println!("{} {} {}", x, newton_sqrt(x), x.sqrt());
    }
    let a = 2.5f64;
    println!("{} {} {} {} {}", a.floor(), a.ceil(), a.round(), (-a).round(), a.powi(3));
    println!("{} {} {}", a.powf(0.5), a.max(3.0), a.min(-1.0));
    let mut sum = 0.0;
    for i in 1..=10 {
        sum += 1.0 / i as f64;
    }
    println!("{} {:.10}", sum, sum);
    println!("{}", 0.1 + 0.7);
}
