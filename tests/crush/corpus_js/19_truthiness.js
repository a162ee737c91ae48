const vals = [0, -0, 1, "", "0", " ", null, undefined, NaN, [], {}, Infinity];
for (const v of vals) console.log(typeof v, v ? "truthy" : "falsy", !v, !!v);
console.log(0 || null || "x", 1 && 0 && 2, "" ?? "d", null ?? undefined ?? 5, 0 || undefined);
console.log(null === null, undefined === undefined, null === undefined, NaN === NaN, [] === []);
