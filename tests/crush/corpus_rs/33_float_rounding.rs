// floor, ceil, round and trunc keep the sign of zero; round takes halves away from zero exactly
fn main() {
    let xs: Vec<f64> = vec![2.5, -2.5, 0.5, -0.5, -0.4, 0.49999999999999994, 4503599627370497.0, -0.0, 1e300];
    for x in &xs {
        println!("{} {} {} {} | {:?} {:?}", x.round(), x.floor(), x.ceil(), x.trunc(), x.ceil(), x.round());
    }
    let inf: f64 = 1.0 / 0.0;
    println!("{} {} {}", inf.floor(), (-inf).round(), (0.0f64 / 0.0).trunc());
}
