fn main() {
    let mut table = String::new();
    for i in 1..=9 {
        for j in 1..=9 {
            if j > i {
                break;
            }
            if (i + j) % 5 == 0 {
                continue;
            }
            table.push_str(&format!("{:>3}", i * j));
        }
        table.push_str("\n");
    }
    print!("{}", table);
    let mut pyth = 0;
    for a in 1..30 {
        for b in a..30 {
            for c in b..30 {
                if a * a + b * b == c * c {
                    pyth += 1;
                }
            }
        }
    }
    println!("{} triples", pyth);
}
