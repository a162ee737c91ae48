fn main() {
    let mut s = String::new();
    for i in 0..5 {
        s.push_str(&i.to_string());
        s.push_str("-");
    }
    println!("{} {}", s, s.len());
    let t = String::from("  Hello, Wörld  ");
    println!("[{}] [{}] [{}] {}", t.trim(), t.to_uppercase(), t.to_lowercase(), t.len());
    println!("{} {} {}", t.contains("Wö"), t.trim().starts_with("Hell"), t.ends_with("x"));
    let u = "ab".repeat(3) + "c";
    println!("{} {}", u, u == "abababc");
    println!("{:?} {:?}", "quote\"and\\slash\n", String::from("tab\t"));
    let n: i64 = "12345".parse().unwrap();
    println!("{}", n * 2);
}
