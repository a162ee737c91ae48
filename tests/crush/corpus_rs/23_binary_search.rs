fn search(v: &Vec<i64>, x: i64) -> i64 {
    let mut lo: i64 = 0;
    let mut hi: i64 = v.len() as i64 - 1;
    while lo <= hi {
        let mid = lo + (hi - lo) / 2;
        let m = v[mid as usize];
        if m == x {
            return mid;
        } else if m < x {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    -1
}

fn main() {
    let mut v: Vec<i64> = Vec::new();
    for i in 0..100 {
        v.push(i * 7);
    }
    for x in vec![0i64, 7, 693, 694, -7, 350] {
        println!("{} -> {}", x, search(&v, x));
    }
}
