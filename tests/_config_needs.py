"""What the shipped configs need that a fresh clone with the shared data lacks: asserted
exactly by the config sweeps of test_check.py and test_data_paths.py."""

#: configs whose data is not in the shared data folder (a dataset to download or prepare)
MISSING_DATA = (
    {f"lnsr/{t}_{m}.yml" for t in ("squad", "stsb")
     for m in ("plain", "lnsr", "lnsr_manifold", "l2sp", "mixout", "smart")}
    | {f"localization/{m}_{s}.yml" for m in ("bmn", "lstm") for s in ("basketball", "football")}
    | {f"pssl/{m}_pssl{s}.yml" for m in ("deeplabv3_r50", "pspnet_r50", "ocrnet_hrnetw18")
       for s in ("", "_poly")}
    | {"pssl/stdc2_seg_pssl.yml", "pssl/pp_liteseg_stdc2_pssl.yml",
       "segmentation/stdc2_seg_voc12aug_pssl.yml", "segmentation/pp_liteseg_stdc2_cityscapes_pssl.yml"}
    | {f"skeleton/{c}.yml" for c in ("agcn2s_fsd10", "agcn2s_fsd10_bone", "agcn2s_fsd10_fusion",
                                     "agcn_fsd10", "stgcn_fsd10", "stgcn_ntu")}
    | {f"video/{c}.yml" for c in ("pptsm_basketball", "pptsm_football", "pptsm_r50",
                                  "pptsm_table_tennis", "tsm_r50", "tsn_r50")})
