fn main() {
    let v: Vec<i32> = vec![10, 20, 30];
    let mut i: usize = 0;
    loop {
        println!("v[{}] = {}", i, v[i]);
        i += 1;
    }
}
