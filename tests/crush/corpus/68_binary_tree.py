# A binary search tree made of dicts: insert, search, traversals, height, deletion.


def insert(node, key):
    if node is None:
        return {"key": key, "left": None, "right": None}
    side = "left" if key < node["key"] else "right"
    node[side] = insert(node[side], key)
    return node


def inorder(node, out):
    if node is not None:
        inorder(node["left"], out)
        out.append(node["key"])
        inorder(node["right"], out)
    return out


def height(node):
    return 0 if node is None else 1 + max(height(node["left"]), height(node["right"]))


def contains(node, key):
    while node is not None:
        if key == node["key"]:
            return True
        node = node["left"] if key < node["key"] else node["right"]
    return False


def delete(node, key):
    if node is None:
        return None
    if key < node["key"]:
        node["left"] = delete(node["left"], key)
    elif key > node["key"]:
        node["right"] = delete(node["right"], key)
    else:
        if node["left"] is None:
            return node["right"]
        if node["right"] is None:
            return node["left"]
        successor = node["right"]
        while successor["left"] is not None:
            successor = successor["left"]
        node["key"] = successor["key"]
        node["right"] = delete(node["right"], successor["key"])
    return node


root = None
for k in [50, 30, 70, 20, 40, 60, 80, 35, 45, 65]:
    root = insert(root, k)
print(inorder(root, []), height(root))
print([contains(root, k) for k in [35, 36, 80, 10]])
for k in [20, 30, 50, 99]:
    root = delete(root, k)
    print("deleted", k, inorder(root, []), height(root))
