fn knapsack(weights: &Vec<usize>, values: &Vec<u64>, cap: usize) -> u64 {
    let mut dp = vec![0u64; cap + 1];
    for i in 0..weights.len() {
        let w = weights[i];
        let mut c = cap;
        while c >= w {
            let cand = dp[c - w] + values[i];
            if cand > dp[c] {
                dp[c] = cand;
            }
            if c == 0 {
                break;
            }
            c -= 1;
        }
    }
    dp[cap]
}

fn main() {
    let w: Vec<usize> = vec![1, 3, 4, 5];
    let v: Vec<u64> = vec![1, 4, 5, 7];
    println!("{}", knapsack(&w, &v, 7));
    let w2: Vec<usize> = vec![10, 20, 30];
    let v2: Vec<u64> = vec![60, 100, 120];
    println!("{}", knapsack(&w2, &v2, 50));
}
