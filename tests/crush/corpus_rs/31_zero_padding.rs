// the 0 flag pads with zeros after the sign and overrides the fill and the alignment
fn main() {
    let n: i32 = 7;
    let m: i64 = -42;
    let f: f64 = -3.14159;
    println!("{:<05}|{:^05}|{:>05}|{:*<05}|{:05}|", n, n, n, n, n);
    println!("{:<06}|{:^+06}|{:>08.3}|{:_^09.2}|{:+06}|", m, n, f, f, n);
    println!("{:<#06x}|{:^#010b}|{:>06}|{:<5}|{:>5}|", 255, 5, "ab", "cd", "ef");
}
