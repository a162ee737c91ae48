fn ok(cols: &Vec<i32>, r: usize, c: i32) -> bool {
    for i in 0..r {
        let d = cols[i] - c;
        if d == 0 || d.abs() == (r - i) as i32 {
            return false;
        }
    }
    true
}

fn place(cols: &mut Vec<i32>, r: usize, n: usize) -> u32 {
    if r == n {
        return 1;
    }
    let mut count: u32 = 0;
    for c in 0..n as i32 {
        if ok(cols, r, c) {
            cols[r] = c;
            count += place(cols, r + 1, n);
        }
    }
    count
}

fn main() {
    for n in 1..8 {
        let mut cols = vec![0i32; n];
        println!("{} {}", n, place(&mut cols, 0, n));
    }
}
