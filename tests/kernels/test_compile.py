"""torch.compile(fullgraph=True) traces a module calling both ops (custom ops with fake kernels) without a break."""
from __future__ import annotations

import torch
from torch import nn

from seqlab.kernels import scan1, simple_gla


class _Tiny(nn.Module):
    def __init__(self, d: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.h, self.dk = heads, d // heads
        self.gate = nn.Linear(d, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.decay = nn.Linear(d, heads)

    def forward(self, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, T, D = x.shape
        y, hT = scan1(None, x.contiguous(), log_a=nn.functional.logsigmoid(self.gate(x)).contiguous(),
                      initial_state=h0, output_final_state=True, backend="torch")
        q, k, v = (t.reshape(B, T, self.h, self.dk).contiguous() for t in self.qkv(y).chunk(3, -1))
        g = nn.functional.logsigmoid(self.decay(y)).contiguous()
        o, s = simple_gla(q, k, v, g, output_final_state=True, backend="torch")
        return o.reshape(B, T, D), s.sum() + hT.sum()


def test_compile_fullgraph_matches_eager():
    torch.manual_seed(0)
    m = _Tiny()
    x, h0 = torch.randn(2, 20, 16), torch.randn(2, 16)
    explanation = torch._dynamo.explain(m)(x, h0)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1
    torch._dynamo.reset()
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    o_c, s_c = compiled(x, h0)
    (o_c.square().sum() + s_c).backward()
    grads_c = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    o_e, s_e = m(x, h0)
    (o_e.square().sum() + s_e).backward()
    torch.testing.assert_close(o_c, o_e)
    torch.testing.assert_close(s_c, s_e)
    for gc, ge in zip(grads_c, (p.grad for p in m.parameters())):
        torch.testing.assert_close(gc, ge)
