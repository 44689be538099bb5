# Allocation-heavy Python workload for trace recording (run with
# PYTHONMALLOC=malloc so every object goes through malloc).
import json, random

random.seed(7)
words = ["".join(random.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(random.randint(3, 12)))
         for _ in range(20000)]
index = {}
for i, w in enumerate(words):
    index.setdefault(w[:3], []).append((i, w, len(w)))

class Node:
    __slots__ = ("key", "val", "kids")
    def __init__(self, key, val):
        self.key, self.val, self.kids = key, val, []

root = Node("root", 0)
for i in range(30000):
    n = Node(words[i % len(words)], i)
    root.kids.append(n)
    if i % 3 == 0:
        n.kids.append(Node(str(i), [i] * (i % 17)))

docs = [{"id": i, "name": words[i], "tags": words[i:i + (i % 7)], "score": i * 0.5}
        for i in range(15000)]
blob = json.dumps(docs)
back = json.loads(blob)
back.sort(key=lambda d: (d["name"], -d["id"]))
text = " ".join(d["name"] for d in back)
counts = {}
for w in text.split():
    counts[w] = counts.get(w, 0) + 1
del docs, back, blob
top = sorted(counts.items(), key=lambda kv: -kv[1])[:100]
print(len(index), len(root.kids), len(counts), top[0][1])
