// str::trim removes Unicode White_Space only; parse::<T>() of long digit strings overflows
fn show(s: &str) {
    let t = s.trim();
    println!("{} {} {}", s.len(), t.len(), t.to_uppercase());
}

fn main() {
    show("  padded\t\n");
    show("\u{1c}sep\u{1f}");
    show("\u{a0}\u{2003}nbsp\u{3000}\u{85}");
    show("\u{feff}bom");
    let small: i64 = "-000000000000000000000000000000000000000000000000000123".parse().unwrap();
    let big: u8 = "+255".parse().unwrap();
    println!("{} {}", small, big);
    let text = "9".repeat(5000);
    let huge: i64 = text.parse().unwrap();
    println!("{}", huge);
}
