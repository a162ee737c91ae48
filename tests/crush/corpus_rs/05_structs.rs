#[derive(Debug, Clone)]
struct Account {
    owner: String,
    balance: i64,
    history: Vec<i64>,
}

impl Account {
    fn new(owner: &str) -> Account {
        Account { owner: owner.to_string(), balance: 0, history: Vec::new() }
    }
    fn deposit(&mut self, amount: i64) {
        self.balance += amount;
        self.history.push(amount);
    }
    fn withdraw(&mut self, amount: i64) -> bool {
        if amount > self.balance {
            return false;
        }
        self.balance -= amount;
        self.history.push(-amount);
        true
    }
}

fn main() {
    let mut acc = Account::new("ada");
    acc.deposit(100);
    acc.deposit(50);
    println!("{}", acc.withdraw(30));
    println!("{}", acc.withdraw(1000));
    println!("{:?}", acc);
    let copy = acc.clone();
    acc.deposit(1);
    println!("{} {} {}", copy.balance, acc.balance, acc.owner);
}
