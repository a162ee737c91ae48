#[derive(Debug, Clone, PartialEq)]
struct Item {
    name: String,
    qty: u32,
    price: f64,
}

fn total(items: &Vec<Item>) -> f64 {
    let mut t = 0.0;
    for it in items.iter() {
        t += it.qty as f64 * it.price;
    }
    t
}

fn main() {
    let mut items: Vec<Item> = Vec::new();
    items.push(Item { name: String::from("apple"), qty: 3, price: 0.5 });
    items.push(Item { name: String::from("pear"), qty: 2, price: 0.75 });
    items.push(Item { name: "fig".to_string(), qty: 10, price: 0.2 });
    items[1].qty += 5;
    println!("{:.2}", total(&items));
    for it in &items {
        println!("{:<6}|{:>3}|{:>6.2}", it.name, it.qty, it.price);
    }
    println!("{:?}", items[0]);
    println!("{}", items[0] == items[0].clone());
}
