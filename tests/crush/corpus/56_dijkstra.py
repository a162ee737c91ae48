# Dijkstra's shortest paths on a small weighted graph (O(n^2), no heap), with path recovery.

graph = {
    "A": {"B": 7, "C": 9, "F": 14},
    "B": {"A": 7, "C": 10, "D": 15},
    "C": {"A": 9, "B": 10, "D": 11, "F": 2},
    "D": {"B": 15, "C": 11, "E": 6},
    "E": {"D": 6, "F": 9},
    "F": {"A": 14, "C": 2, "E": 9},
    "G": {},
}


def dijkstra(graph, source):
    dist = {node: None for node in graph}
    prev = {}
    dist[source] = 0
    unvisited = list(graph)
    while unvisited:
        current = None
        for node in unvisited:
            if dist[node] is not None and (current is None or dist[node] < dist[current]):
                current = node
        if current is None:
            break
        unvisited.remove(current)
        for neighbour, weight in graph[current].items():
            candidate = dist[current] + weight
            if dist[neighbour] is None or candidate < dist[neighbour]:
                dist[neighbour] = candidate
                prev[neighbour] = current
    return dist, prev


def path(prev, target):
    out = [target]
    while out[-1] in prev:
        out.append(prev[out[-1]])
    return "".join(reversed(out))


dist, prev = dijkstra(graph, "A")
for node in sorted(dist):
    print(node, dist[node], path(prev, node) if dist[node] is not None else "unreachable")
