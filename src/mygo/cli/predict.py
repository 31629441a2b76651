"""predict: the top-k entities for (head, relation, ?) or (?, relation, tail) queries, by name.

    mygo predict --head chair_000 --relation made_of
    mygo predict --relation has_color --tail red --k 5 --filter
    mygo predict --queries queries.tsv      # lines: head<TAB>relation<TAB>?  or  ?<TAB>relation<TAB>tail
"""
from __future__ import annotations


def add_arguments(parser) -> None:
    parser.add_argument("--model", default="models/model.pt", help="the checkpoint (default: %(default)s)")
    parser.add_argument("--kg", default="data/processed/kg", help="prepare's KG folder, for the names (default: %(default)s)")
    parser.add_argument("--head", help="the known head entity, by name: (head, relation, ?)")
    parser.add_argument("--relation", help="the relation, by name")
    parser.add_argument("--tail", help="the known tail entity, by name: (?, relation, tail)")
    parser.add_argument("--queries", help="a TSV file of queries, one a line (instead of --head / --tail)")
    parser.add_argument("--k", type=int, default=10, help="answers per query (default: %(default)s)")
    parser.add_argument("--filter", action="store_true", help="skip answers already known (train/valid/test)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N (default: %(default)s)")


def check(args) -> str | None:
    """A usage error in the arguments, or None."""
    from mygo.params import is_device
    if args.k < 1:
        return f"--k {args.k}: must be >= 1"
    if not is_device(args.device):
        return f"--device {args.device!r}: must be auto, cpu, cuda or cuda:N"
    if not args.queries and (not args.relation or (args.head is None) == (args.tail is None)):
        return "give --relation and exactly one of --head / --tail (or --queries FILE)"
    return None


def run(args) -> None:
    from mygo.checkpoint import check_fingerprint, load_checkpoint
    from mygo.device import pick_device
    from mygo.evaluation import KnownAnswers
    from mygo.folders import KGFolder
    from mygo.prediction import Query, predict, read_queries
    queries = read_queries(args.queries) if args.queries else [Query(args.head, args.relation, args.tail)]
    device = pick_device(args.device)
    kg = KGFolder(args.kg)
    model, checkpoint = load_checkpoint(args.model, device)
    check_fingerprint(checkpoint, args.model, kg.path)
    entities, relations = kg.entity_names(), kg.relation_names()
    known = KnownAnswers(list(kg.splits().values())) if args.filter else None
    for query, answers in zip(queries, predict(model, queries, entities, relations, args.k, known, device)):
        print(f"({query.head or '?'}, {query.relation}, {query.tail or '?'})")
        for rank, (name, score) in enumerate(answers, 1):
            print(f"  {rank:>3}. {name}\t{score:.4f}")
