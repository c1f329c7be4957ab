//! What an MPI launcher (OpenMPI, PMIx, Slurm's PMI, MPICH's Hydra) tells a process
//! through its environment, in any build: whether one started it, and its rank.

/// Whether an MPI launcher started this process: several ranks then share the
/// machine's cores.
pub fn under_launcher() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMIX_RANK",
        "PMI_RANK",
        "PMI_SIZE",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|k| std::env::var_os(k).is_some())
}

/// The rank the launcher gave this process (`None`: none started it).
pub fn rank() -> Option<usize> {
    ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
}

/// The index of this process among the ranks on its machine (`None`: no launcher
/// says it).
pub fn local_rank() -> Option<usize> {
    [
        "OMPI_COMM_WORLD_LOCAL_RANK",
        "SLURM_LOCALID",
        "MPI_LOCALRANKID",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok()?.parse::<usize>().ok())
}
