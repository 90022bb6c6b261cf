//! Neural masses: one model per file, its equations, parameter table and citation in the file's
//! documentation. Adding one is its file here and one line below (the catalogue's order).

crate::registry! {
    mpr::Mpr,
    jansen_rit::JansenRit,
    wilson_cowan::WilsonCowan,
    wong_wang::WongWang,
    wong_wang_ei::WongWangEi,
    hopf::Hopf,
    fhn::FitzHughNagumo,
    generic2d::Generic2d,
    kuramoto::Kuramoto,
    epileptor::Epileptor,
    bvep::Bvep,
    larter_breakspear::LarterBreakspear,
    coombes_byrne::CoombesByrne,
    linear::Linear,
    vdp::VanDerPol,
    threshold_linear::ThresholdLinear,
    lorenz::Lorenz,
}
