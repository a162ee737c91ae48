// floor, ceil, round and trunc keep the sign of zero; round takes halves away from zero exactly;
// powf is C's pow (an overflow or a pole keeps the sign of an odd power)
fn main() {
    let xs: Vec<f64> = vec![2.5, -2.5, 0.5, -0.5, -0.4, 0.49999999999999994, 4503599627370497.0, -0.0, 1e300];
    for x in &xs {
        println!("{} {} {} {} | {:?} {:?}", x.round(), x.floor(), x.ceil(), x.trunc(), x.ceil(), x.round());
    }
    let inf: f64 = 1.0 / 0.0;
    println!("{} {} {}", inf.floor(), (-inf).round(), (0.0f64 / 0.0).trunc());
    let nz: f64 = -0.0;
    let base: f64 = -2.0;
    println!("{} {} {} {} {}", nz.powf(-1.0), nz.powf(-2.0), base.powf(1025.0), base.powf(1024.0), base.powf(0.5));
}
