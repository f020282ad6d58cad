"""What the shipped configs need that a fresh clone with the shared data lacks: asserted
exactly by the config sweeps of test_check.py and test_data_paths.py."""

#: configs whose data is not in the shared data folder (a dataset to download or prepare)
MISSING_DATA = (
    {f"lnsr/{t}_{m}.yml" for t in ("squad", "stsb")
     for m in ("plain", "lnsr", "lnsr_manifold", "l2sp", "mixout", "smart")}
    | {f"localization/{m}_{s}.yml" for m in ("bmn", "lstm") for s in ("basketball", "football")}
    | {"localization/lstm_football_image.yml"}
    | {f"pssl/{m}_pssl{s}.yml" for m in ("deeplabv3_r50", "pspnet_r50", "ocrnet_hrnetw18")
       for s in ("", "_poly")}
    | {"pssl/stdc2_seg_pssl.yml", "pssl/pp_liteseg_stdc2_pssl.yml",
       "segmentation/stdc2_seg_voc12aug_pssl.yml", "segmentation/pp_liteseg_stdc2_cityscapes_pssl.yml"}
    | {f"skeleton/{c}.yml" for c in ("agcn2s_fsd10", "agcn2s_fsd10_bone", "agcn2s_fsd10_fusion",
                                     "agcn_fsd10", "stgcn_fsd10", "stgcn_ntu", "stgcn_fsd10_ppzoo",
                                     "agcn_fsd10_ppzoo", "agcn2s_fsd10_ppzoo",
                                     "agcn2s_fsd10_bone_ppzoo", "stgcn_ntu_ppzoo")}
    | {f"video/{c}.yml" for c in ("pptsm_basketball", "pptsm_football", "pptsm_r50",
                                  "pptsm_table_tennis", "tsm_r50", "tsn_r50", "pptsm_r50_ppzoo",
                                  "tsm_r50_ppzoo", "tsn_r50_ppzoo", "tsn_r50_test",
                                  "pptsm_r50_dense", "pptsm_r50_dense_test")})

#: the papers' own settings (configs/<family>/paper/, docs/paper_settings.md): ImageNet for
#: EDL-Dist's teacher and students, GLUE's STS-B for LNSR (the shared data has neither)
PAPER_MISSING_DATA = (
    {f"distill/paper/{c}.yml" for c in ("imagenet_teacher_resnext101", "imagenet_edl_resnet50",
                                        "imagenet_online_resnet50")}
    | {f"lnsr/paper/stsb_{m}.yml" for m in ("plain", "lnsr", "l2sp", "mixout", "smart")})
MISSING_DATA = MISSING_DATA | PAPER_MISSING_DATA
#: configs of the papers' settings that download weights: BERT-Large through PaddleNLP
PAPER_DOWNLOADS = {f"lnsr/paper/{t}_{m}.yml": {"bert-large-uncased"}
                   for t in ("rte", "mrpc", "cola", "stsb")
                   for m in ("plain", "lnsr", "l2sp", "mixout", "smart")}
#: ... and that read an earlier step's output: the exported teacher
PAPER_STEPS = {f"distill/paper/{c}.yml": {"output/edl_paper_teacher/inference"}
               for c in ("imagenet_edl_resnet50", "imagenet_online_resnet50")}
