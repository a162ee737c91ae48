const data = { id: 7, tags: ["a", "b"], nested: { ok: true, none: null, skip: undefined }, f: 1.5 };
console.log(JSON.stringify(data));
console.log(JSON.stringify([1, "two", [3, [4]], {}]), JSON.stringify("q\"uote"), JSON.stringify(NaN));
console.log(Array.isArray([]), Array.isArray({}), String(12.5), String([1, [2, 3]]), String(null));
