module tracetail

go 1.26

require golang.org/x/exp v0.0.0-20251209150349-8475f28825e9
