"""The kvstore API across ranks (tests/dist/test_dist_kvstore.py runs it on 2 ranks)."""

import numpy as np

import symgraph as sg

kv = sg.kv.create("dist_sync")
r, n = kv.rank, kv.num_workers
assert kv.type == "dist_sync" and n == 2, (kv.type, n)
# init takes rank 0's value everywhere
kv.init("w", sg.nd.array(np.full((2, 3), 10.0 + r)))
out = sg.nd.zeros((2, 3))
kv.pull("w", out=out)
np.testing.assert_array_equal(out.asnumpy(), 10.0)
# push sums the devices' values and the workers'; without optimizer it replaces the value
kv.push("w", [sg.nd.array(np.full((2, 3), r + 1.0)), sg.nd.array(np.ones((2, 3)))])
kv.pull("w", out=out)
np.testing.assert_array_equal(out.asnumpy(), (1 + 1) + (2 + 1))
# pushpull: the sum over workers into out
grads = sg.nd.array(np.arange(6.0).reshape(2, 3) * (r + 1))
res = sg.nd.zeros((2, 3))
kv.pushpull(3, grads, out=res)
np.testing.assert_array_equal(res.asnumpy(), np.arange(6.0).reshape(2, 3) * 3)
# broadcast: rank 0's value into out
res2 = sg.nd.zeros(4)
kv.broadcast("b", sg.nd.array(np.full(4, float(r) + 7)), out=res2)
np.testing.assert_array_equal(res2.asnumpy(), 7.0)
# an optimizer on the kvstore updates the stored weight with the summed gradient
kv.set_optimizer(sg.optimizer.create("sgd", learning_rate=0.5))
kv.init(9, sg.nd.array(np.ones(3)))
kv.push(9, sg.nd.array(np.full(3, 1.0 + r)))
w = sg.nd.zeros(3)
kv.pull(9, out=w)
np.testing.assert_allclose(w.asnumpy(), 1 - 0.5 * 3)
kv.barrier()
print(f"rank {r} kv ok", flush=True)
