fn main() {
    let mut v: Vec<i32> = vec![3, 1, 4, 1, 5, 9, 2, 6];
    v.sort();
    println!("{:?}", v);
    v.reverse();
    println!("{:?}", v);
    v.insert(2, 100);
    let r = v.remove(0);
    println!("{} {:?} {}", r, v, v.contains(&100));
    let last = v.pop().unwrap();
    println!("{} {}", last, v.len());
    let total: i32 = v.iter().sum();
    println!("sum {}", total);
    let mut words: Vec<String> = Vec::new();
    words.push(String::from("pear"));
    words.push("apple".to_string());
    words.push(format!("fig{}", 2));
    words.sort();
    println!("{:?}", words);
    let mut empty: Vec<i32> = Vec::new();
    empty.push(1);
    empty.pop().unwrap();
    println!("now empty: {}", empty.is_empty());
    empty.pop().unwrap();
}
