"""The torch parts of the summary auto-encoder (oddkit.nn.summary): copying, the repetition
penalty and the per-prefix discriminator, checked on hand-made inputs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from oddkit.nn.summary import (  # noqa: E402
    TextSummaryAutoEncoder,
    adversarial_loss,
    discriminator_loss,
    repetition_loss,
)

PAD, BOS, EOS, UNK = 0, 1, 2, 3
V = 20


def module(seed: int = 0) -> TextSummaryAutoEncoder:
    torch.manual_seed(seed)
    return TextSummaryAutoEncoder(V, PAD, BOS, embed_dim=8, hidden_dim=16, summary_ratio=0.5,
                                  max_summary_length=8, forbidden_ids=(PAD, BOS, EOS, UNK))


def test_a_summariser_that_only_copies_copies_forward_in_order_and_never_a_special_token():
    model = module()
    with torch.no_grad():
        model.sum_copy.bias.fill_(-50.0)  # the switch says "copy" at every step
    tokens = torch.tensor([[5, UNK, 9, 5, 12, 7, UNK, 4, 11, 6, EOS, PAD],
                           [8, 8, 13, UNK, 14, 15, 16, 17, 18, 19, 10, EOS]])
    lengths = torch.tensor([11, 12])
    for seed in range(5):  # whatever the attention, greedy or sampled
        torch.manual_seed(seed)
        for hard in (False, True):
            words, k = model.summarize(tokens, lengths, lengths - 1, tau=0.5, hard_sample=hard)
            assert k.tolist() == [5, 6]
            for row, n, message in zip(words.argmax(-1).tolist(), k.tolist(), tokens.tolist()):
                summary = row[:n]
                assert not {PAD, BOS, EOS, UNK} & set(summary)
                # a subsequence of the message: each word found after the previous one's position,
                # until no word is left to copy (then the switch must write)
                position = -1
                for word in summary:
                    later = [j for j in range(position + 1, len(message)) if message[j] == word]
                    if later:
                        position = later[0]
                    else:
                        assert all(t in (PAD, EOS, UNK) for t in message[position + 1:]), (summary, message)
                assert position >= 0


def test_the_summariser_can_write_words_that_are_not_in_the_message():
    model = module()
    with torch.no_grad():
        model.sum_copy.bias.fill_(50.0)  # always write from the vocabulary
        model.sum_out.bias.zero_()
        model.sum_out.bias[19] = 100.0
    tokens = torch.tensor([[5, 6, 7, 8, EOS]])
    words, k = model.summarize(tokens, torch.tensor([5]), torch.tensor([4]), hard_sample=False)
    assert words.argmax(-1)[0, : int(k[0])].tolist() == [19, 19]


def test_the_reconstructor_can_copy_the_summarys_words():
    model = module()
    with torch.no_grad():
        model.rec_copy.bias.fill_(-50.0)  # only copy
    summary = torch.tensor([[4, 9, 15]])
    log_probs = model.reconstruct_log_probs(summary, torch.tensor([3]), torch.tensor([[4, 9, 15, 6]]))
    mass = log_probs.exp()[0, :, [4, 9, 15]].sum(-1)
    assert torch.allclose(mass, torch.ones_like(mass), atol=1e-4)  # every step's mass is on the summary's words
    generated = model.generate(summary, torch.tensor([3]), 5, EOS)
    assert set(generated[0].tolist()) <= {4, 9, 15}


def test_repetition_loss_is_the_share_of_words_repeating_an_earlier_one():
    def onehot(rows):
        return torch.nn.functional.one_hot(torch.tensor(rows), V).float()

    words = onehot([[5, 6, 5, 5], [5, 6, 7, 8], [4, 4, 9, 9]])
    loss = repetition_loss(words, torch.tensor([4, 4, 2]))
    assert loss.tolist() == pytest.approx([0.5, 0.0, 0.5])  # the third row's last two are padding
    soft = torch.softmax(torch.randn(2, 4, V), -1).requires_grad_()
    repetition_loss(soft, torch.tensor([4, 3])).sum().backward()
    assert soft.grad is not None and torch.isfinite(soft.grad).all()


def test_the_discriminator_judges_each_prefix_without_looking_ahead():
    model = module()
    a = torch.tensor([[4, 5, 6, 7]])
    b = torch.tensor([[4, 5, 6, 19]])
    logits_a = model.discriminate(a, torch.tensor([4]))
    logits_b = model.discriminate(b, torch.tensor([4]))
    assert logits_a.shape == (1, 4)
    torch.testing.assert_close(logits_a[:, :3], logits_b[:, :3])  # a prefix's verdict ignores later words
    assert not torch.allclose(logits_a[:, 3], logits_b[:, 3])
    onehot = torch.nn.functional.one_hot(a, V).float()
    torch.testing.assert_close(model.discriminate(onehot, torch.tensor([4])), logits_a)


def test_a_discriminator_step_separates_real_from_generated_prefixes():
    model = module()
    real = torch.randint(4, 10, (32, 5))
    fake = torch.nn.functional.one_hot(torch.randint(10, V, (32, 5)), V).float()
    lengths = torch.full((32,), 5)
    params = [p for n, p in model.named_parameters() if n.startswith("dis_")]
    opt = torch.optim.Adam(params, lr=1e-2)
    first = float(discriminator_loss(model, fake, lengths, real, lengths).detach())
    for _ in range(30):
        opt.zero_grad()
        discriminator_loss(model, fake, lengths, real, lengths).backward()
        opt.step()
    assert float(discriminator_loss(model, fake, lengths, real, lengths).detach()) < first / 4
    assert float(adversarial_loss(model, fake, lengths).detach()) > 2.0  # the generated prefixes are now told apart


def test_decoding_without_repeated_ngrams_never_repeats_one():
    model = module()
    with torch.no_grad():
        model.rec_copy.bias.fill_(-50.0)  # only copy: three summary words to fill 12 places, bound to loop
    summary = torch.tensor([[4, 9, 15]])
    plain = model.generate(summary, torch.tensor([3]), 12, EOS)[0].tolist()
    assert len(set(zip(plain, plain[1:]))) < len(plain) - 1  # plain greedy decoding repeats a bigram
    for size in (1, 2, 3):
        row = model.generate(summary, torch.tensor([3]), 12, EOS, no_repeat_ngram=size)[0].tolist()
        row = row[: row.index(EOS) + 1] if EOS in row else row
        grams = [tuple(row[i:i + size]) for i in range(len(row) - size + 1)]
        assert len(grams) == len(set(grams)), (size, row)
