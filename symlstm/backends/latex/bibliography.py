"""The references the documents cite (`Document.cite(key)`), as data, and their typeset form."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["REFERENCES", "Reference", "bibitem"]


@dataclass(frozen=True)
class Reference:
    authors: str
    year: int
    title: str
    venue: str  # journal with volume and pages, or proceedings, or an arXiv number


REFERENCES: dict[str, Reference] = {
    "bengio1994": Reference(
        "Y. Bengio, P. Simard and P. Frasconi", 1994,
        "Learning long-term dependencies with gradient descent is difficult",
        r"\emph{IEEE Transactions on Neural Networks} 5(2):157--166"),
    "hochreiter1997": Reference(
        "S. Hochreiter and J. Schmidhuber", 1997, "Long short-term memory",
        r"\emph{Neural Computation} 9(8):1735--1780"),
    "gers2000": Reference(
        "F. A. Gers, J. Schmidhuber and F. Cummins", 2000,
        "Learning to forget: continual prediction with LSTM",
        r"\emph{Neural Computation} 12(10):2451--2471"),
    "sak2014": Reference(
        "H. Sak, A. Senior and F. Beaufays", 2014,
        "Long short-term memory recurrent neural network architectures for large scale acoustic modeling",
        "Proceedings of Interspeech; arXiv:1402.1128"),
    "gers2000time": Reference(
        "F. A. Gers and J. Schmidhuber", 2000, "Recurrent nets that time and count",
        "Proceedings of the International Joint Conference on Neural Networks (IJCNN)"),
    "gers2002": Reference(
        "F. A. Gers, N. N. Schraudolph and J. Schmidhuber", 2002,
        "Learning precise timing with LSTM recurrent networks",
        r"\emph{Journal of Machine Learning Research} 3:115--143"),
    "cho2014": Reference(
        r"K. Cho, B. van Merri\"enboer, C. Gulcehre, D. Bahdanau, F. Bougares, H. Schwenk and Y. Bengio",
        2014, "Learning phrase representations using RNN encoder-decoder for statistical machine translation",
        "Proceedings of EMNLP; arXiv:1406.1078"),
    "chung2014": Reference(
        "J. Chung, C. Gulcehre, K. Cho and Y. Bengio", 2014,
        "Empirical evaluation of gated recurrent neural networks on sequence modeling", "arXiv:1412.3555"),
    "greff2017": Reference(
        r"K. Greff, R. K. Srivastava, J. Koutn\'{\i}k, B. R. Steunebrink and J. Schmidhuber", 2017,
        "LSTM: a search space odyssey",
        r"\emph{IEEE Transactions on Neural Networks and Learning Systems} 28(10):2222--2232; "
        "arXiv:1503.04069"),
    "jozefowicz2015": Reference(
        "R. Jozefowicz, W. Zaremba and I. Sutskever", 2015,
        "An empirical exploration of recurrent network architectures",
        "Proceedings of the 32nd International Conference on Machine Learning (ICML), PMLR 37"),
    "pascanu2013": Reference(
        "R. Pascanu, T. Mikolov and Y. Bengio", 2013,
        "On the difficulty of training recurrent neural networks",
        "Proceedings of the 30th International Conference on Machine Learning (ICML); arXiv:1211.5063"),
    "he2016": Reference(
        "K. He, X. Zhang, S. Ren and J. Sun", 2016, "Deep residual learning for image recognition",
        "Proceedings of the IEEE Conference on Computer Vision and Pattern Recognition (CVPR)"),
    "elman1990": Reference(
        "J. L. Elman", 1990, "Finding structure in time", r"\emph{Cognitive Science} 14(2):179--211"),
    "werbos1990": Reference(
        "P. J. Werbos", 1990, "Backpropagation through time: what it does and how to do it",
        r"\emph{Proceedings of the IEEE} 78(10):1550--1560"),
    "williams1990": Reference(
        "R. J. Williams and J. Peng", 1990,
        "An efficient gradient-based algorithm for on-line training of recurrent network trajectories",
        r"\emph{Neural Computation} 2(4):490--501"),
    "graves2005": Reference(
        "A. Graves and J. Schmidhuber", 2005,
        "Framewise phoneme classification with bidirectional LSTM and other neural network architectures",
        r"\emph{Neural Networks} 18(5--6):602--610"),
    "zhou2016": Reference(
        "G.-B. Zhou, J. Wu, C.-L. Zhang and Z.-H. Zhou", 2016,
        "Minimal gated unit for recurrent neural networks",
        r"\emph{International Journal of Automation and Computing} 13(3):226--234; arXiv:1603.09420"),
    "westhuizen2018": Reference(
        "J. van der Westhuizen and J. Lasenby", 2018, "The unreasonable effectiveness of the forget gate",
        "arXiv:1804.04849"),
    "tallec2018": Reference(
        "C. Tallec and Y. Ollivier", 2018, "Can recurrent neural networks warp time?",
        "International Conference on Learning Representations (ICLR); arXiv:1804.11188"),
    "paszke2019": Reference(
        "A. Paszke et al.", 2019, "PyTorch: an imperative style, high-performance deep learning library",
        r"Advances in Neural Information Processing Systems 32; the modules \texttt{torch.nn.RNN}, "
        r"\texttt{torch.nn.LSTM} and \texttt{torch.nn.GRU}"),
}  # fmt: skip


def bibitem(ref: Reference) -> str:
    """The typeset entry: authors, year, title, venue."""
    title = ref.title if ref.title.endswith(("?", "!")) else f"{ref.title}."
    return f"{ref.authors} ({ref.year}). {title} {ref.venue}."
