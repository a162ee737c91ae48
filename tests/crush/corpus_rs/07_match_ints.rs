fn describe(n: i32) -> String {
    let kind = match n {
        i32::MIN..=-1 => "negative",
        0 => "zero",
        1 | 2 | 3 => "small",
        4..=99 => "medium",
        x if x % 2 == 0 => "big even",
        _ => "big odd",
    };
    format!("{} is {}", n, kind)
}

fn main() {
    let xs: Vec<i32> = vec![-5, 0, 2, 50, 100, 101];
    for x in xs.iter() {
        println!("{}", describe(*x));
    }
}
