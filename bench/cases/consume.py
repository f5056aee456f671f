from bench.harness import Case

def cases() -> list[Case]:
    return []
